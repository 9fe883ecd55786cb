"""The worker's OIP v2 gRPC endpoint (KServe v2 / Triton `GRPCInferenceService`).

The same state, batchers and adapters as the HTTP server: an inference goes through
`InferEndpoint.run`, so priorities, deadlines, batching and errors behave the same. Started by
the worker's lifespan when a gRPC address is given (`medserve worker --grpc-port P`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from google.protobuf import json_format
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as rpc

from core.constants import VERSION
from core.errors import InternalError, MedserveError, Unavailable
from core.logging import request_id_var
from workers.runtime.grpc_codec import (
    grpc_code,
    model_config_message,
    request_from_proto,
    response_to_proto,
)
from workers.runtime.infer import InferEndpoint, request_id_from
from workers.runtime.server_info import EXTENSIONS, SERVER_NAME
from workers.runtime.state import WorkerState, batch_config

log = logging.getLogger("medserve.worker.grpc")


async def abort(context: Any, error: MedserveError) -> None:
    await context.abort(grpc_code(error), error.message)


def _request_id(context: Any) -> str:
    meta = dict(context.invocation_metadata() or ())
    return request_id_from(meta.get("x-request-id"))


class WorkerService(rpc.GRPCInferenceServiceServicer):
    """`GRPCInferenceService` over one worker's state."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state
        self.infer = InferEndpoint(state)

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        self.state.ensure_started()
        return pb.ServerReadyResponse(ready=self.state.ready)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=VERSION, extensions=EXTENSIONS)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        try:
            name = self.state.adapter(request.name, request.version or None).name
        except MedserveError as error:
            await abort(context, error)
        ready = self.state.states.get(name) == "READY" and not self.state.draining
        return pb.ModelReadyResponse(ready=ready)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        try:
            doc = self.state.adapter(request.name, request.version or None).metadata()
        except MedserveError as error:
            await abort(context, error)
        doc = {k: v for k, v in doc.items() if k != "parameters"}
        return json_format.ParseDict(doc, pb.ModelMetadataResponse(), ignore_unknown_fields=True)

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        try:
            adapter = self.state.adapter(request.name, request.version or None)
        except MedserveError as error:
            await abort(context, error)
        config = adapter.config(batch_config(self.state.settings, adapter))
        return pb.ModelConfigResponse(config=model_config_message(config))

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        self.state.ensure_started()
        entries = [e for e in self.state.index() if not request.ready or e["state"] == "READY"]
        return pb.RepositoryIndexResponse(models=[
            pb.RepositoryIndexResponse.ModelIndex(name=e["name"], version=e["version"],
                                                  state=e["state"], reason=e.get("reason", ""))
            for e in entries
        ])  # fmt: skip

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        state = self.state
        try:
            name = state.adapter(request.model_name).name
            loop = asyncio.get_running_loop()
            if not await loop.run_in_executor(state.pool, state.load, name):
                raise Unavailable(f"model '{name}' failed to load: {state.reasons.get(name)}")
        except MedserveError as error:
            await abort(context, error)
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        try:
            name = self.state.adapter(request.model_name).name
        except MedserveError as error:
            await abort(context, error)
        await asyncio.get_running_loop().run_in_executor(self.state.pool, self.state.unload, name)
        return pb.RepositoryModelUnloadResponse()

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        rid = _request_id(context)
        token = request_id_var.set(rid)
        try:
            decoded = request_from_proto(request)
            response = await self.infer.run(
                request.model_name, request.model_version or None, decoded, rid
            )
            return response_to_proto(response, decoded.outputs)
        except MedserveError as error:
            log.log(logging.WARNING if grpc_code(error) == grpc.StatusCode.INTERNAL
                    else logging.INFO, "infer refused", extra={"code": error.code})  # fmt: skip
            await abort(context, error)
        except Exception as exc:  # a bug: answer safely, log the type only
            log.error("infer crashed", extra={"error_type": type(exc).__name__})
            await abort(context, InternalError("internal error; it was logged with the request id"))
        finally:
            request_id_var.reset(token)


async def start_grpc(state: WorkerState, address: str) -> Any:
    """Serve `GRPCInferenceService` on `address` (host:port) in the running event loop."""
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 1 << 30),
                                      ("grpc.max_send_message_length", 1 << 30)])  # fmt: skip
    rpc.add_GRPCInferenceServiceServicer_to_server(WorkerService(state), server)
    server.add_insecure_port(address)
    await server.start()
    log.info("grpc listening", extra={"address": address})
    return server

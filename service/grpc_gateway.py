"""The gateway's OIP v2 gRPC endpoint (`MEDSERVE_GRPC_PORT`): `tritonclient.grpc` works against
the platform unchanged.

API keys (metadata `authorization: Bearer <key>` or `x-api-key`), rate limits and request ids
apply as on HTTP; an inference goes to the worker hosting the model through the same route
table and client as the HTTP routes (so the same batcher, priorities and deadlines), and errors
map to the gRPC codes Triton uses.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import grpc
import orjson
from google.protobuf import json_format
from tritonclient.grpc import service_pb2 as pb
from tritonclient.grpc import service_pb2_grpc as rpc

from core.constants import VERSION
from core.errors import MedserveError, ModelNotFound, UpstreamError
from core.logging import request_id_var
from core.settings import GatewaySettings
from service.auth import Authenticator, RateLimiter
from service.metrics import GatewayMetrics
from service.model_router import ModelRouter
from service.readiness import Readiness
from workers.runtime.client import error_of
from workers.runtime.grpc_codec import (
    grpc_code,
    model_config_message,
    request_from_proto,
    response_to_proto,
)
from workers.runtime.params import parse_priority, parse_timeout
from workers.runtime.server_info import EXTENSIONS, SERVER_NAME

log = logging.getLogger("medserve.gateway.grpc")
OPEN = frozenset({"ServerLive", "ServerReady"})


class GatewayService(rpc.GRPCInferenceServiceServicer):
    """`GRPCInferenceService` in front of the workers."""

    def __init__(self, models: ModelRouter, readiness: Readiness, auth: Authenticator,
                 limiter: RateLimiter, metrics: GatewayMetrics) -> None:  # fmt: skip
        self.models, self.readiness = models, readiness
        self.auth, self.limiter, self.metrics = auth, limiter, metrics

    async def _admit(self, context: Any, method: str) -> str:
        """Request id, API key and rate limit; aborts the call when refused."""
        meta = {k.lower(): v for k, v in (context.invocation_metadata() or ())}
        request_id = str(meta.get("x-request-id") or uuid.uuid4().hex)[:128]
        request_id_var.set(request_id)
        if self.auth.enabled and method not in OPEN:
            headers = {k.encode(): str(v).encode() for k, v in meta.items()}
            try:
                key = self.auth.key_from_headers(headers)
                tenant = self.auth.tenant_for(key)
                if self.limiter.enabled and key is not None:
                    await self.limiter.check(key, tenant)
            except MedserveError as error:
                await context.abort(grpc_code(error), error.message)
        return request_id

    async def _json(self, model: str, method: str, path: str, request_id: str) -> Any:
        route = self.models.oip_route(model) if method == "GET" else self.models.route(model)
        status, headers, body = await self.models.forward(route, method, path, b"", {}, request_id)
        if status != 200:
            raise error_of(status, {k.decode(): v.decode("latin-1") for k, v in headers}, body)
        return orjson.loads(body) if body else {}

    async def ServerLive(self, request: Any, context: Any) -> Any:
        await self._admit(context, "ServerLive")
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        await self._admit(context, "ServerReady")
        return pb.ServerReadyResponse(ready=self.readiness.ready())

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        await self._admit(context, "ServerMetadata")
        return pb.ServerMetadataResponse(name=SERVER_NAME, version=VERSION, extensions=EXTENSIONS)

    async def ModelReady(self, request: Any, context: Any) -> Any:
        await self._admit(context, "ModelReady")
        if not self.models.known(request.name):
            await self._abort(context, ModelNotFound(f"model '{request.name}' is not served here"))
        return pb.ModelReadyResponse(ready=self.models.is_ready(request.name))

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        rid = await self._admit(context, "ModelMetadata")
        try:
            doc = await self._json(request.name, "GET", f"/v2/models/{request.name}", rid)
        except MedserveError as error:
            await self._abort(context, error)
        doc = {k: v for k, v in doc.items() if k != "parameters"}
        return json_format.ParseDict(doc, pb.ModelMetadataResponse(), ignore_unknown_fields=True)

    async def ModelConfig(self, request: Any, context: Any) -> Any:
        rid = await self._admit(context, "ModelConfig")
        try:
            doc = await self._json(request.name, "GET", f"/v2/models/{request.name}/config", rid)
        except MedserveError as error:
            await self._abort(context, error)
        return pb.ModelConfigResponse(config=model_config_message(doc))

    async def RepositoryIndex(self, request: Any, context: Any) -> Any:
        await self._admit(context, "RepositoryIndex")
        models = [
            pb.RepositoryIndexResponse.ModelIndex(name=name, state=route.state,
                                                  reason=route.reason or "")
            for name, route in self.models.snapshot().items()
            if not request.ready or route.ready
        ]  # fmt: skip
        return pb.RepositoryIndexResponse(models=models)

    async def _repository(self, request: Any, context: Any, action: str) -> None:
        rid = await self._admit(context, f"RepositoryModel{action.title()}")
        path = f"/v2/repository/models/{request.model_name}/{action}"
        try:
            await self._json(request.model_name, "POST", path, rid)
        except MedserveError as error:
            await self._abort(context, error)

    async def RepositoryModelLoad(self, request: Any, context: Any) -> Any:
        await self._repository(request, context, "load")
        return pb.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, request: Any, context: Any) -> Any:
        await self._repository(request, context, "unload")
        return pb.RepositoryModelUnloadResponse()

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        rid = await self._admit(context, "ModelInfer")
        try:
            decoded = request_from_proto(request)
            params = decoded.parameters
            timeout = parse_timeout(None, params, 0.0) if "timeout" in params else None
            remaining = context.time_remaining()
            if remaining is not None:
                timeout = min(timeout or remaining, remaining)
            response = await self.models.infer(
                request.model_name, decoded.inputs, params,
                priority=parse_priority(None, params), timeout_s=timeout, request_id=rid,
                outputs=decoded.outputs or None, version=request.model_version or None,
            )  # fmt: skip
            response.id = decoded.id or response.id  # the client's id, as a server echoes it
            return response_to_proto(response, decoded.outputs)
        except MedserveError as error:
            await self._abort(context, error)
        except Exception as exc:  # a bug: answer safely, log the type only
            log.error("grpc infer crashed", extra={"error_type": type(exc).__name__})
            await self._abort(context, UpstreamError("internal error; see the gateway log"))

    async def _abort(self, context: Any, error: MedserveError) -> None:
        self.metrics.upstream_errors.labels("grpc", error.code).inc()
        await context.abort(grpc_code(error), error.message)


async def start_grpc_gateway(service: GatewayService, settings: GatewaySettings) -> Any:
    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 1 << 30),
                                      ("grpc.max_send_message_length", 1 << 30)])  # fmt: skip
    rpc.add_GRPCInferenceServiceServicer_to_server(service, server)
    server.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
    await server.start()
    log.info("grpc listening", extra={"port": settings.grpc_port})
    return server

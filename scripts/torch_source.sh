# Sourced by setup.sh and lock.sh: where torch's CPU build comes from, as uv arguments.
# PyPI's torch for Linux is the CUDA build (several GB); the CPU build is a local wheel
# folder (TORCH_WHEELS, or /opt/wheels where the machine ships one) or PyTorch's CPU index.
if [ -n "${TORCH_WHEELS:-}" ]; then
    TORCH_SOURCE=(--find-links "$TORCH_WHEELS")
elif compgen -G "/opt/wheels/torch-2.13.0+cpu-*.whl" >/dev/null; then
    TORCH_SOURCE=(--find-links /opt/wheels)
else
    TORCH_SOURCE=(--extra-index-url https://download.pytorch.org/whl/cpu
        --index-strategy unsafe-best-match)
fi

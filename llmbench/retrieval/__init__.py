"""Retrieval-augmented tasks: a corpus of passages with ids, BM25 / dense / hybrid
retrievers over an index cached on disk, and what a retrieval leaves on a sample and in
its answer's trace."""

"""The offline side: parse corpora, embed papers, write and read the index on disk."""

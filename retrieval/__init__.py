"""Finding and answering: embeddings, collections, keyword and vector search, fusion, answers.

The native engine is importable on its own as ``retrieval.index``.
"""

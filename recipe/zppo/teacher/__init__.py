"""The frozen teacher: a client of an OpenAI-compatible server, a small server for CPU runs, and the tokenization
of stored teacher responses."""

"""The frozen teacher: a client of an OpenAI-compatible chat-completions server (``client.py``) and the service
that starts one for a run or uses one already running (``service.py``)."""

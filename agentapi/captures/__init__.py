"""Reading stored captures back: header text and content codings, shared by the API and the inspector.

Nothing here imports Django or the dashboard: bytes in, text or bytes out.
"""

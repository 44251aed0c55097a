"""The inspector UI: the pages at / and /status, their JSON endpoints and the live WebSocket.

It reads captures through agentapi.captures and acts (replay, tunnel metrics) through the runtime;
nothing in agentapi imports it. Templates and assets stay at the top level (templates/dashboard/,
static/dashboard/), where the project's settings find them.
"""

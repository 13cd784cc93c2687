"""The reviewers' web page: server-rendered, served by the gateway itself under ``/ui``."""

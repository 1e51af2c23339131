"""Local stand-ins for the cloud services: a Kinesis + S3 endpoint and a PostgreSQL server.

Run as ``python -m deploy.local <command>`` from the repository root (``--help`` lists the
commands). Everything the services write (data, logs, pid files) lives under ``.local/``.
"""

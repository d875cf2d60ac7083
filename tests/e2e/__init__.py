"""End-to-end tests: the real `chatbot` binary, driven over HTTP like a client.

Run from the repository root:
    python3 -m unittest discover -s tests/e2e -t . -v
"""

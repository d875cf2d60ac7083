"""Reads a Server-Sent Events stream on stdin; prints one line per event: `<id> <type>`."""
import sys

event_id, event_type = None, "message"
for line in sys.stdin.read().replace("\r\n", "\n").split("\n"):
    if line == "":
        if event_id is not None:
            print(event_id, event_type)
        event_id, event_type = None, "message"
    elif line.startswith("id:"):
        event_id = line[3:].strip()
    elif line.startswith("event:"):
        event_type = line[6:].strip()

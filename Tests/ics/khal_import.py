"""Imports an iCalendar object from stdin into khal (PyPI), a calendar program, in a throwaway
calendar, then lists what khal holds as JSON on one line. Usage: khal_import.py KHAL FROM DAYS
(FROM a date, YYYY-MM-DD; DAYS how many days to list). Exits 1 with khal's words if it refuses."""
import json
import os
import subprocess
import sys
import tempfile

khal, start, days = sys.argv[1], sys.argv[2], sys.argv[3]
with tempfile.TemporaryDirectory() as work:
    calendar = os.path.join(work, "calendar")
    os.mkdir(calendar)
    config = os.path.join(work, "config")
    with open(config, "w") as f:
        f.write(f"""[calendars]
[[bookings]]
path = {calendar}
type = calendar
[locale]
timeformat = %H:%M
dateformat = %Y-%m-%d
longdateformat = %Y-%m-%d
datetimeformat = %Y-%m-%dT%H:%M
longdatetimeformat = %Y-%m-%dT%H:%M
local_timezone = UTC
default_timezone = UTC
[default]
default_calendar = bookings
""")
    source = os.path.join(work, "import.ics")
    with open(source, "wb") as f:
        f.write(sys.stdin.buffer.read())
    env = dict(os.environ, XDG_DATA_HOME=os.path.join(work, "data"), XDG_CONFIG_HOME=work, TZ="UTC")
    imported = subprocess.run([khal, "-c", config, "import", "--batch", "-a", "bookings", source],
                              env=env, capture_output=True, text=True, timeout=60)
    if imported.returncode != 0 or "error" in imported.stderr.lower():
        print(f"khal import failed ({imported.returncode}): {imported.stderr.strip()}", file=sys.stderr)
        sys.exit(1)
    fields = ["uid", "title", "location", "start", "end", "status"]
    listed = subprocess.run([khal, "-c", config, "list", "--day-format", ""] + [a for f in fields for a in ("--json", f)] + [start, f"{days}d"],
                            env=env, capture_output=True, text=True, timeout=60)
    if listed.returncode != 0:
        print(f"khal list failed ({listed.returncode}): {listed.stderr.strip()}", file=sys.stderr)
        sys.exit(1)
    events = {}
    for line in listed.stdout.splitlines():
        line = line.strip()
        if line.startswith("["):
            for event in json.loads(line):
                events[event["uid"]] = event  # an event spanning days is listed once per day
    print(json.dumps(sorted(events.values(), key=lambda e: (e["start"], e["uid"]))))

"""Parses an iCalendar object from stdin with the `icalendar` package (PyPI) — an implementation
this project did not write — and prints what it read as JSON, for the Swift tests to compare
with what the service meant to write. Exits 1 with the parser's complaint if it cannot parse."""
import json
import sys

import icalendar

raw = sys.stdin.buffer.read()
try:
    calendar = icalendar.Calendar.from_ical(raw)
except Exception as error:  # the parser's own words are the point
    print(f"icalendar could not parse it: {error}", file=sys.stderr)
    sys.exit(1)

def text(component, name):
    value = component.get(name)
    return None if value is None else str(value)

def utc(component, name):
    value = component.get(name)
    if value is None:
        return None
    moment = value.dt
    if moment.tzinfo is None or moment.utcoffset().total_seconds() != 0:
        return f"not UTC: {moment!r}"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

events = []
for event in calendar.walk("VEVENT"):
    events.append({
        "uid": text(event, "UID"),
        "summary": text(event, "SUMMARY"),
        "location": text(event, "LOCATION"),
        "status": text(event, "STATUS"),
        "sequence": int(event.get("SEQUENCE")) if event.get("SEQUENCE") is not None else None,
        "dtstart": utc(event, "DTSTART"),
        "dtend": utc(event, "DTEND"),
        "dtstamp": utc(event, "DTSTAMP"),
    })
print(json.dumps({
    "version": text(calendar, "VERSION"),
    "prodid": text(calendar, "PRODID"),
    "name": text(calendar, "X-WR-CALNAME"),
    "events": events,
}))

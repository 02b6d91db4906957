"""The stream shell: Faust agents that load table entries, call the pure stages over a record's items, save
each changed entry once, and send what the stages emitted packed per partition.

- `barrier`   the error barrier, gap repair and dead-lettering every stage runs inside
- `outbox`    outputs packed per target partition (schemas/batch.py), one record per partition per input
- `dedup`     `alerts` -> table `fingerprints` -> `alert-events`
- `grouping`  `alert-events` -> table `groups` -> `incident-events` (and the ticks that drive its timers)
- `project`   `incident-events` -> the Redis read model, then paging and runbooks react
- `sinks`     `changes`, `action-results`, `notifications` -> Redis

`firebreak/worker.py` builds the Faust app and wires these together.
"""

"""Runbook execution and notification channels. Empty until the runbooks and paging work lands; the
incident events on `incident-events` are the input they will consume."""

"""Suites shipped with timetrial (package data: `timetrial run demo`, `timetrial run full`)."""

"""Load tests of the online API (loopback only): locust users (locustfile.py) and the bounded run (run.py)."""

"""Activity recognition from inertial-sensor recordings (see README.md)."""

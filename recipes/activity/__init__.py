"""Activity recognition from inertial-sensor recordings and from video clips (see README.md)."""

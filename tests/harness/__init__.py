"""The real-parts test harness: a private dockerd, a registry-free base image, real Unix users."""

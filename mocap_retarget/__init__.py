"""mocap_retarget."""

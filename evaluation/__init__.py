"""The text-to-motion benchmark loop and the VQ reconstruction evaluation."""

"""Generated leaderboards: result records in results/, pages built by build.py (later issue)."""

"""Generated leaderboards: result records in results/, pages and plots built by build.py."""

"""Restores into isolated throwaway staging: logical dumps, base backups, Redis RDB copies."""

"""The /v1/organization/... admin API (internal token only, every call audit-logged)."""

-- A user's own time zone (IANA name) for calendar-aligned quota windows, and when it was
-- last changed (changes are limited so a user cannot hop zones for a fresh day).
ALTER TABLE users ADD COLUMN timezone TEXT;
ALTER TABLE users ADD COLUMN timezone_changed_at TEXT;

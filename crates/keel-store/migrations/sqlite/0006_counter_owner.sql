-- Quota counters belong to a user or to the whole tenant (`scope = "tenant"` limits): the
-- column that named the user now names the owner, a user id (`usr_…`) or `tenant` for the
-- counter every user of the tenant shares. Existing rows are users' counters, unchanged.
ALTER TABLE quota_counters RENAME COLUMN user_id TO owner;

-- Approval re-validates a request against the tier it is granted at. A request remembers the
-- fingerprint of the tier definition it was made (or last re-confirmed) under, beside the
-- fingerprint of the terms agreed (`terms_hash`): when either changed, approval is refused
-- until the team re-confirms. Requests made before this column existed have NULL (their tier
-- is not compared; their terms still are). `confirmed_at` is when the team last confirmed.
ALTER TABLE access_requests ADD COLUMN tier_hash TEXT;
ALTER TABLE access_requests ADD COLUMN confirmed_at TEXT;

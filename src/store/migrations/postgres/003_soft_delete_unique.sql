-- External ids stay unique among live rows only: a contact deleted in
-- GoHighLevel (soft-deleted here) and later re-created, or a late message
-- for it, must be able to insert a fresh row with the same external id.
DROP INDEX leads_ghl;
CREATE UNIQUE INDEX leads_ghl ON leads(tenant_id, ghl_contact_id) WHERE ghl_contact_id IS NOT NULL AND deleted_at IS NULL;
DROP INDEX agents_ghl;
CREATE UNIQUE INDEX agents_ghl ON agents(tenant_id, ghl_user_id) WHERE ghl_user_id IS NOT NULL AND deleted_at IS NULL;
DROP INDEX listings_ext;
CREATE UNIQUE INDEX listings_ext ON listings(tenant_id, external_id) WHERE external_id IS NOT NULL AND deleted_at IS NULL;

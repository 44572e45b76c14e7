use keel_core::ids::TenantId;

/// The tenant a store call acts within. Store methods take it first so that reads and
/// writes are always filtered by tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantScope {
    tenant: TenantId,
}

impl TenantScope {
    /// A scope for one tenant.
    pub fn new(tenant: TenantId) -> Self {
        Self { tenant }
    }

    /// The tenant of this scope.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }
}

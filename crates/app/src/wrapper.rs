//! One definition of a store that wraps another: the read cache's
//! write-through store and the signing store each change what `commit`,
//! `purge` and `commit_token` do, and pass every other call of the port to
//! the store they wrap. A method added to `ConfigStore` is then passed on in
//! one place.

use guildconf_ports::ConfigStore;

/// A store that wraps another one (see [`wrapping_store!`]).
pub(crate) trait Wraps {
    /// The store every call but the wrapper's own goes to.
    fn wrapped(&self) -> &dyn ConfigStore;
}

/// Implements `ConfigStore` for `$ty` (which implements [`Wraps`]): the
/// methods given in the braces (`commit`, `purge` and `commit_token`, the
/// writes that append chained entries), and every other method of the port
/// passed to [`Wraps::wrapped`] unchanged.
macro_rules! wrapping_store {
    ($ty:ty { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl guildconf_ports::ConfigStore for $ty {
            $($own)*

            async fn head(
                &self,
                guild: guildconf_domain::GuildId,
            ) -> guildconf_ports::StoreResult<Option<guildconf_ports::Head>> {
                $crate::wrapper::Wraps::wrapped(self).head(guild).await
            }

            async fn commit_all(
                &self,
                changes: Box<
                    dyn Iterator<Item = guildconf_ports::StoreResult<guildconf_ports::ChangeSet>>
                        + Send,
                >,
            ) -> guildconf_ports::StoreResult<u64> {
                $crate::wrapper::Wraps::wrapped(self).commit_all(changes).await
            }

            async fn entry_signature(
                &self,
                guild: guildconf_domain::GuildId,
                seq: u64,
            ) -> guildconf_ports::StoreResult<
                Option<(String, Option<guildconf_domain::EntrySignature>)>,
            > {
                $crate::wrapper::Wraps::wrapped(self).entry_signature(guild, seq).await
            }

            async fn request(
                &self,
                guild: guildconf_domain::GuildId,
                request_id: &str,
            ) -> guildconf_ports::StoreResult<Option<guildconf_ports::RequestRecord>> {
                $crate::wrapper::Wraps::wrapped(self).request(guild, request_id).await
            }

            async fn snapshot(
                &self,
                guild: guildconf_domain::GuildId,
                version: u64,
            ) -> guildconf_ports::StoreResult<Option<guildconf_ports::Snapshot>> {
                $crate::wrapper::Wraps::wrapped(self).snapshot(guild, version).await
            }

            async fn entry_at(
                &self,
                guild: guildconf_domain::GuildId,
                at: guildconf_domain::Timestamp,
            ) -> guildconf_ports::StoreResult<Option<(u64, guildconf_domain::Operation)>> {
                $crate::wrapper::Wraps::wrapped(self).entry_at(guild, at).await
            }

            async fn list_guilds(
                &self,
            ) -> guildconf_ports::StoreResult<Vec<guildconf_ports::GuildSummary>> {
                $crate::wrapper::Wraps::wrapped(self).list_guilds().await
            }

            async fn history(
                &self,
                query: &guildconf_ports::HistoryQuery,
            ) -> guildconf_ports::StoreResult<Vec<guildconf_domain::Entry>> {
                $crate::wrapper::Wraps::wrapped(self).history(query).await
            }

            async fn stats(
                &self,
                query: &guildconf_ports::StatsQuery,
            ) -> guildconf_ports::StoreResult<Vec<guildconf_ports::StatsRow>> {
                $crate::wrapper::Wraps::wrapped(self).stats(query).await
            }

            async fn guild_ids(
                &self,
                after: Option<guildconf_domain::GuildId>,
                limit: u32,
            ) -> guildconf_ports::StoreResult<Vec<guildconf_domain::GuildId>> {
                $crate::wrapper::Wraps::wrapped(self).guild_ids(after, limit).await
            }

            async fn entries(
                &self,
                guild: guildconf_domain::GuildId,
                after_seq: u64,
                since: Option<guildconf_domain::Timestamp>,
                limit: u32,
                with_snapshots: bool,
            ) -> guildconf_ports::StoreResult<Vec<guildconf_ports::StoredEntry>> {
                $crate::wrapper::Wraps::wrapped(self)
                    .entries(guild, after_seq, since, limit, with_snapshots)
                    .await
            }

            async fn entries_between(
                &self,
                after: (guildconf_domain::GuildId, u64),
                through: guildconf_domain::GuildId,
                since: Option<guildconf_domain::Timestamp>,
                limit: u32,
                with_snapshots: bool,
            ) -> guildconf_ports::StoreResult<Vec<guildconf_ports::StoredEntry>> {
                $crate::wrapper::Wraps::wrapped(self)
                    .entries_between(after, through, since, limit, with_snapshots)
                    .await
            }

            async fn stored_head(
                &self,
                guild: guildconf_domain::GuildId,
            ) -> guildconf_ports::StoreResult<Option<guildconf_ports::StoredHead>> {
                $crate::wrapper::Wraps::wrapped(self).stored_head(guild).await
            }

            async fn stored_heads(
                &self,
                from: guildconf_domain::GuildId,
                through: guildconf_domain::GuildId,
            ) -> guildconf_ports::StoreResult<
                Vec<(guildconf_domain::GuildId, guildconf_ports::StoredHead)>,
            > {
                $crate::wrapper::Wraps::wrapped(self).stored_heads(from, through).await
            }

            async fn rows_past_heads(
                &self,
                from: guildconf_domain::GuildId,
                through: guildconf_domain::GuildId,
            ) -> guildconf_ports::StoreResult<Vec<guildconf_ports::PastHead>> {
                $crate::wrapper::Wraps::wrapped(self).rows_past_heads(from, through).await
            }

            async fn stored_requests(
                &self,
                from: guildconf_domain::GuildId,
                through: guildconf_domain::GuildId,
            ) -> guildconf_ports::StoreResult<Vec<guildconf_ports::StoredRequest>> {
                $crate::wrapper::Wraps::wrapped(self).stored_requests(from, through).await
            }

            async fn watch(
                &self,
            ) -> guildconf_ports::StoreResult<Box<dyn guildconf_ports::ChangeWatcher>> {
                $crate::wrapper::Wraps::wrapped(self).watch().await
            }

            async fn token_by_hash(
                &self,
                secret_sha256: &str,
            ) -> guildconf_ports::StoreResult<Option<guildconf_domain::TokenInfo>> {
                $crate::wrapper::Wraps::wrapped(self).token_by_hash(secret_sha256).await
            }

            async fn token(
                &self,
                id: &str,
            ) -> guildconf_ports::StoreResult<Option<guildconf_domain::TokenInfo>> {
                $crate::wrapper::Wraps::wrapped(self).token(id).await
            }

            async fn tokens(
                &self,
            ) -> guildconf_ports::StoreResult<Vec<guildconf_domain::TokenInfo>> {
                $crate::wrapper::Wraps::wrapped(self).tokens().await
            }

            async fn purge_candidate(
                &self,
                guild: guildconf_domain::GuildId,
                before: guildconf_domain::Timestamp,
            ) -> guildconf_ports::StoreResult<Option<guildconf_ports::PurgeCandidate>> {
                $crate::wrapper::Wraps::wrapped(self).purge_candidate(guild, before).await
            }
        }
    };
}

pub(crate) use wrapping_store;

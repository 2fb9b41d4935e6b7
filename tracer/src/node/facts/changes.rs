//! Whether a namespace's facts must be read again, from what was seen at the last read and what
//! the cheap checks say now (nftables generation, legacy rules' mark, a route subscription,
//! netfilter drops the kernel saw). Pure: it reads nothing and decides only.

/// The cheap marks of a namespace's sources at one look.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    /// The nftables ruleset generation; None when it could not be asked.
    pub nft_generation: Option<u32>,
    /// The hash of the legacy tables' rules without their counters (`legacy_mark`); None when
    /// not read.
    pub legacy_rules: Option<u64>,
}

/// What a look found besides the marks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    /// The route subscription saw a route or link message (or lost some), or there is none.
    pub routes_changed: bool,
    /// The kernel counted netfilter drops in the namespace since the last read: the rules'
    /// counters rose, so the rules are listed again to read them.
    pub netfilter_drops: bool,
}

/// Which sources to read again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Refresh {
    pub nft: bool,
    pub legacy: bool,
    pub routes: bool,
}

impl Refresh {
    pub(crate) const ALL: Refresh = Refresh {
        nft: true,
        legacy: true,
        routes: true,
    };

    pub(crate) fn any(self) -> bool {
        self.nft || self.legacy || self.routes
    }
}

/// True when either side is unknown or they differ.
fn moved<T: PartialEq>(before: &Option<T>, now: &Option<T>) -> bool {
    before.is_none() || now.is_none() || before != now
}

/// What to read again: everything the first time (`before` None); after that nft when its
/// generation moved or is unknown, legacy tables when their rules' mark moved or is unknown, both
/// when netfilter dropped there, and routes when the subscription says so.
pub(crate) fn decide(before: Option<&Marks>, now: &Marks, seen: Seen) -> Refresh {
    let Some(before) = before else {
        return Refresh::ALL;
    };
    Refresh {
        nft: seen.netfilter_drops || moved(&before.nft_generation, &now.nft_generation),
        legacy: seen.netfilter_drops || moved(&before.legacy_rules, &now.legacy_rules),
        routes: seen.routes_changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(generation: Option<u32>, legacy: Option<u64>) -> Marks {
        Marks {
            nft_generation: generation,
            legacy_rules: legacy,
        }
    }

    #[test]
    fn what_is_read_again() {
        let quiet = Seen::default();
        let routes = Seen {
            routes_changed: true,
            ..Seen::default()
        };
        let drops = Seen {
            netfilter_drops: true,
            ..Seen::default()
        };
        let same = marks(Some(7), Some(0));
        let none = Refresh::default();
        let cases = [
            // (before, now, seen, expected)
            (None, same.clone(), quiet, Refresh::ALL),
            (Some(same.clone()), same.clone(), quiet, none),
            (
                Some(same.clone()),
                marks(Some(8), Some(0)),
                quiet,
                Refresh { nft: true, ..none },
            ),
            (
                Some(same.clone()),
                marks(Some(7), Some(0x5eed)),
                quiet,
                Refresh {
                    legacy: true,
                    ..none
                },
            ),
            (
                Some(same.clone()),
                same.clone(),
                routes,
                Refresh {
                    routes: true,
                    ..none
                },
            ),
            (
                Some(same.clone()),
                same.clone(),
                drops,
                Refresh {
                    nft: true,
                    legacy: true,
                    ..none
                },
            ),
            // A generation that could not be asked, now or before: listed every time.
            (
                Some(same.clone()),
                marks(None, Some(0)),
                quiet,
                Refresh { nft: true, ..none },
            ),
            (
                Some(marks(None, Some(0))),
                marks(None, Some(0)),
                quiet,
                Refresh { nft: true, ..none },
            ),
        ];
        for (i, (before, now, seen, expected)) in cases.into_iter().enumerate() {
            assert_eq!(decide(before.as_ref(), &now, seen), expected, "case {i}");
        }
        assert!(!none.any() && Refresh::ALL.any());
    }
}

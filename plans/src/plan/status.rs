//! Each service's status (planned, excluded, manual, needs a decision, presence unknown), the
//! reasons for it, and its continuity strategy, with the findings that explain a service held
//! back.

use super::refs::PolicyRefs;
use super::{Ctx, Finding, PlanOptions, Status};
use crate::steps::Strategy;
use tailshift_parsers::inventory::CoverageEntry;
use tailshift_parsers::{Coverage, Presence, Severity};

/// Status, reasons and strategy of each service, by inventory index.
pub(super) struct Statuses {
    /// What happens to it.
    pub(super) status: Vec<Status>,
    /// Why, so far (the wave's reason is added once waves are known).
    pub(super) reasons: Vec<Vec<String>>,
    /// Its continuity strategy.
    pub(super) strategy: Vec<Strategy>,
}

/// Judges every service in inventory order; the checks stop at the first that settles it.
pub(super) fn judge(
    ctx: &Ctx,
    opts: &PlanOptions,
    refs: &PolicyRefs,
    findings: &mut Vec<Finding>,
) -> Statuses {
    let n = ctx.inv.services.len();
    let mut st = Statuses {
        status: vec![Status::Planned; n],
        reasons: vec![Vec::new(); n],
        strategy: ctx
            .inv
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| ctx.policy.strategy_for(ctx.ids[i].as_str(), &s.name))
            .collect(),
    };
    for i in 0..n {
        if refs.excluded.contains(&i) {
            st.status[i] = Status::Excluded;
            st.reasons[i].push("excluded by the policy: stays on tsnsrv".into());
            continue;
        }
        if st.presence(ctx, refs, i, findings)
            || st.coverage(ctx, opts, i, findings)
            || st.mounted_funnel(ctx, refs, i, findings)
        {
            continue;
        }
        st.funnel(ctx, i, findings);
    }
    st
}

impl Statuses {
    /// A service declared under a condition the inputs cannot decide: `[plan.present]` says
    /// whether it exists, else it is held back. True when that settles it.
    fn presence(
        &mut self,
        ctx: &Ctx,
        refs: &PolicyRefs,
        i: usize,
        findings: &mut Vec<Finding>,
    ) -> bool {
        let s = &ctx.inv.services[i];
        let id = &ctx.ids[i];
        let Presence::Conditional { condition, location, .. } = &s.presence else { return false };
        match refs.present.get(&i) {
            Some(true) => {
                self.reasons[i].push(format!(
                    "declared only when {condition}; stated present in [plan.present]"
                ));
                false
            }
            Some(false) => {
                self.status[i] = Status::Excluded;
                self.reasons[i].push(format!(
                    "declared only when {condition}; stated absent in [plan.present]: nothing to move"
                ));
                true
            }
            None => {
                self.status[i] = Status::PresenceUnknown;
                self.reasons[i].push(format!(
                    "exists only when {condition}, which the inputs cannot decide; say whether it does in migrate.toml: [plan.present] \"{id}\" = true (or false)"
                ));
                findings.push(Finding::new(
                    "presence_unknown",
                    Severity::Warning,
                    Some(id),
                    format!(
                        "{id} exists only when {condition}, which the inputs cannot decide: it is held back until [plan.present] \"{id}\" says whether it exists"
                    ),
                    location.clone().or_else(|| s.location.clone()),
                ));
                true
            }
        }
    }

    /// Values the reader could not make out: manual, unless `--accept-unknown`. True when that
    /// settles it.
    fn coverage(
        &mut self,
        ctx: &Ctx,
        opts: &PlanOptions,
        i: usize,
        findings: &mut Vec<Finding>,
    ) -> bool {
        let s = &ctx.inv.services[i];
        let unclear: Vec<&CoverageEntry> =
            s.coverage.iter().filter(|c| c.status != Coverage::Understood).collect();
        if unclear.is_empty() {
            return false;
        }
        let what = unclear
            .iter()
            .map(|c| format!("{} ({})", c.attribute, c.status))
            .collect::<Vec<_>>()
            .join(", ");
        if opts.accept_unknown {
            self.reasons[i].push(format!("accepted with unknown values: {what}"));
            return false;
        }
        self.status[i] = Status::Manual;
        self.reasons[i].push(format!("manual: {what}; resolve them or pass --accept-unknown"));
        findings.push(Finding::new(
            "manual_unknown",
            Severity::Warning,
            Some(&ctx.ids[i]),
            format!("{} is kept out of automatic waves: {what}", ctx.ids[i]),
            unclear[0].location.clone().or_else(|| s.location.clone()),
        ));
        true
    }

    /// A public service mounted under the node's own name: its public URL changes. True when
    /// that settles it.
    fn mounted_funnel(
        &mut self,
        ctx: &Ctx,
        refs: &PolicyRefs,
        i: usize,
        findings: &mut Vec<Finding>,
    ) -> bool {
        let s = &ctx.inv.services[i];
        let Some(m) = refs.mounts.get(&i) else { return false };
        if s.effective.bool("funnel") != Some(true) {
            return false;
        }
        let tailnet = &ctx.policy.tailnet;
        let host = s.host.known().cloned().unwrap_or_default();
        let url = format!("https://{host}.{tailnet}{m}");
        self.reasons[i].push(format!(
            "public under {url} (Funnel on the node's own name); its legacy name answers 308 there"
        ));
        findings.push(Finding::new(
            "public_url_changes",
            Severity::Warning,
            Some(&ctx.ids[i]),
            format!(
                "{}'s public URL changes from https://{}.{tailnet}/ to {url}: the app must support the base path {m}; tailnet clients keep the old name",
                ctx.ids[i], s.name
            ),
            s.location.clone(),
        ));
        true
    }

    /// A public service under a strategy that cannot keep it public: an operator decides.
    fn funnel(&mut self, ctx: &Ctx, i: usize, findings: &mut Vec<Finding>) {
        let s = &ctx.inv.services[i];
        let strategy = self.strategy[i];
        if s.effective.bool("funnel") != Some(true) || strategy.keeps_funnel() {
            return;
        }
        self.status[i] = Status::NeedsDecision;
        self.reasons[i]
            .push(format!("public (Funnel), but {} cannot carry Funnel", strategy.as_str()));
        findings.push(Finding::new(
            "needs_decision_funnel",
            Severity::Warning,
            Some(&ctx.ids[i]),
            format!(
                "{} is public through Funnel and {} cannot keep it public. Choose: keep-node (public name kept, node cost stays); \
                 a path under the node's own name with a 308 redirect (public URL changes, tailnet name kept); or exclude it for now",
                ctx.ids[i],
                strategy.as_str()
            ),
            s.effective
                .get("funnel")
                .and_then(|v| v.location().cloned())
                .or_else(|| s.location.clone()),
        ));
    }
}

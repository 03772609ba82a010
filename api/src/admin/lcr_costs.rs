//! Least-cost routing's cost table (`[lcr] costs`): listed, set and removed live. Each
//! change goes through [`AdminState::change`] like any other: checked, stored, swapped
//! in (the gateway brings a connector under LCR or takes it out), audited.

use proto::admin as pb;
use router::{config::parse_micros, lcr::CostConfig};
use tonic::{Request, Response, Status};

use super::{
    apply::Change,
    auth::actor,
    convert::{invalid, network_code},
    service::{AdminService, done, json},
};

type Reply<T> = Result<Response<T>, Status>;

/// The network a cost is for, checked: MCC and MNC have at most three digits.
fn network(c: &pb::LcrCost) -> Result<(u16, u16), Status> {
    Ok((network_code("mcc", c.mcc)?, network_code("mnc", c.mnc)?))
}

fn to_pb(c: &CostConfig) -> pb::LcrCost {
    pb::LcrCost {
        connector: c.connector.clone(),
        mcc: c.mcc.into(),
        mnc: c.mnc.into(),
        cost: c.cost.clone(),
    }
}

impl AdminService {
    pub(super) async fn lcr_costs(&self) -> pb::LcrCostList {
        let config = self.state.current().await;
        let mut costs: Vec<pb::LcrCost> = config.lcr.costs.iter().map(to_pb).collect();
        costs.sort_by(|a, b| (a.mcc, a.mnc, &a.connector).cmp(&(b.mcc, b.mnc, &b.connector)));
        pb::LcrCostList { costs }
    }

    pub(super) async fn set_lcr_cost_now(
        &self,
        request: Request<pb::LcrCost>,
    ) -> Reply<pb::LcrCost> {
        let actor = actor(&request)?;
        let c = request.into_inner();
        let (mcc, mnc) = network(&c)?;
        let cost = parse_micros(c.cost.trim())
            .map_err(|e| invalid(format!("lcr cost {:?}: {e}", c.cost)))?;
        if cost < 0 {
            return Err(invalid(format!("lcr cost {:?} is negative", c.cost)));
        }
        let line = CostConfig {
            connector: c.connector.clone(),
            mcc,
            mnc,
            cost: c.cost.trim().to_owned(),
        };
        let subject = format!("lcr.cost:{}:{mcc}-{mnc}", c.connector);
        let same = |x: &CostConfig| x.connector == line.connector && x.mcc == mcc && x.mnc == mnc;
        let put = line.clone();
        self.state
            .change(
                Change {
                    actor: &actor,
                    action: "lcr.cost.set",
                    subject,
                },
                |config| {
                    if !config.connectors.iter().any(|k| k.cid == put.connector) {
                        return Err(Status::not_found(format!(
                            "no SMPP connector {:?}",
                            put.connector
                        )));
                    }
                    match config.lcr.costs.iter_mut().find(|x| same(x)) {
                        Some(x) => *x = put,
                        None => config.lcr.costs.push(put),
                    }
                    Ok(())
                },
                |config| json(config.lcr.costs.iter().find(|x| same(x))),
            )
            .await?;
        Ok(Response::new(to_pb(&line)))
    }

    pub(super) async fn remove_lcr_cost_now(
        &self,
        request: Request<pb::LcrCost>,
    ) -> Reply<pb::Done> {
        let actor = actor(&request)?;
        let c = request.into_inner();
        let (mcc, mnc) = network(&c)?;
        let cid = c.connector;
        let same = |x: &CostConfig| x.connector == cid && x.mcc == mcc && x.mnc == mnc;
        self.state
            .change(
                Change {
                    actor: &actor,
                    action: "lcr.cost.remove",
                    subject: format!("lcr.cost:{cid}:{mcc}-{mnc}"),
                },
                |config| {
                    let before = config.lcr.costs.len();
                    config.lcr.costs.retain(|x| !same(x));
                    if config.lcr.costs.len() == before {
                        return Err(Status::not_found(format!(
                            "no lcr cost of {cid:?} for {mcc}-{mnc}"
                        )));
                    }
                    Ok(())
                },
                |config| json(config.lcr.costs.iter().find(|x| same(x))),
            )
            .await?;
        Ok(done(format!("lcr cost of {cid} for {mcc}-{mnc} removed")))
    }
}

//! The ordered tables: MT/MO routes and interceptors (first match wins, by `order`),
//! and the filters they name.

use proto::admin as pb;
use router::config::{InterceptorConfig, RouteConfig, RouterConfig};
use serde_json::Value;
use tonic::{Response, Status};

use super::{
    apply::{AdminState, Change},
    auth::Actor,
    convert,
};

type Reply<T> = Result<Response<T>, Status>;

fn name(table: pb::Table) -> &'static str {
    match table {
        pb::Table::Mt => "mt",
        pb::Table::Mo => "mo",
    }
}

fn routes(c: &mut RouterConfig, table: pb::Table) -> &mut Vec<RouteConfig> {
    match table {
        pb::Table::Mt => &mut c.mt_routes,
        pb::Table::Mo => &mut c.mo_routes,
    }
}

fn route_ref(c: &RouterConfig, table: pb::Table) -> &[RouteConfig] {
    match table {
        pb::Table::Mt => &c.mt_routes,
        pb::Table::Mo => &c.mo_routes,
    }
}

fn interceptors(c: &mut RouterConfig, table: pb::Table) -> &mut Vec<InterceptorConfig> {
    match table {
        pb::Table::Mt => &mut c.mt_interceptors,
        pb::Table::Mo => &mut c.mo_interceptors,
    }
}

fn interceptor_ref(c: &RouterConfig, table: pb::Table) -> &[InterceptorConfig] {
    match table {
        pb::Table::Mt => &c.mt_interceptors,
        pb::Table::Mo => &c.mo_interceptors,
    }
}

fn json<T: serde::Serialize>(v: Option<&T>) -> Option<Value> {
    v.and_then(|v| serde_json::to_value(v).ok())
}

/// Routes in evaluation order: highest order first, DefaultRoute (0) last.
pub fn list_routes(c: &RouterConfig, table: pb::Table) -> pb::RouteList {
    let mut routes: Vec<_> = route_ref(c, table)
        .iter()
        .map(|r| convert::route(table, r))
        .collect();
    routes.sort_by_key(|r| std::cmp::Reverse(r.order));
    pb::RouteList { routes }
}

pub async fn add_route(state: &AdminState, actor: &Actor, r: pb::Route) -> Reply<pb::Route> {
    let table = convert::table(r.table)?;
    let route = convert::route_config(r);
    let order = route.order;
    let action = format!("route.{}.add", name(table));
    let change = Change {
        actor,
        action: &action,
        subject: format!("route.{}:{order}", name(table)),
    };
    let added = route.clone();
    state
        .change(
            change,
            |c| {
                // Jasmin replaces a route of the same order.
                let list = routes(c, table);
                list.retain(|x| x.order != order);
                list.push(added);
                Ok(())
            },
            |c| json(route_ref(c, table).iter().find(|x| x.order == order)),
        )
        .await?;
    Ok(Response::new(convert::route(table, &route)))
}

pub async fn remove_route(state: &AdminState, actor: &Actor, r: pb::RouteRef) -> Reply<pb::Done> {
    let table = convert::table(r.table)?;
    let order = r.order;
    let action = format!("route.{}.remove", name(table));
    let change = Change {
        actor,
        action: &action,
        subject: format!("route.{}:{order}", name(table)),
    };
    state
        .change(
            change,
            |c| {
                let list = routes(c, table);
                let before = list.len();
                list.retain(|x| x.order != order);
                if list.len() == before {
                    return Err(Status::not_found(format!("no route of order {order}")));
                }
                Ok(())
            },
            |c| json(route_ref(c, table).iter().find(|x| x.order == order)),
        )
        .await?;
    Ok(Response::new(pb::Done {
        detail: format!("{} route {order} removed", name(table)),
    }))
}

pub async fn flush_routes(state: &AdminState, actor: &Actor, t: pb::RouteTable) -> Reply<pb::Done> {
    let table = convert::table(t.table)?;
    let action = format!("route.{}.flush", name(table));
    let change = Change {
        actor,
        action: &action,
        subject: format!("route.{}", name(table)),
    };
    state
        .change(
            change,
            |c| {
                routes(c, table).clear();
                Ok(())
            },
            |c| serde_json::to_value(route_ref(c, table)).ok(),
        )
        .await?;
    Ok(Response::new(pb::Done {
        detail: format!("{} routes flushed", name(table)),
    }))
}

pub async fn add_filter(state: &AdminState, actor: &Actor, f: pb::Filter) -> Reply<pb::Filter> {
    // The router compiles a regex filter only where a route uses it: check it now, so a
    // bad one is refused when it is added rather than when a route first names it.
    if matches!(
        f.r#type.as_str(),
        "SourceAddrFilter" | "DestinationAddrFilter" | "ShortMessageFilter"
    ) && let Err(e) = regex::Regex::new(&f.value)
    {
        return Err(convert::invalid(format!("filter {}: {e}", f.fid)));
    }
    let filter = convert::filter_config(f)?;
    let fid = filter.fid.clone();
    let change = Change {
        actor,
        action: "filter.add",
        subject: format!("filter:{fid}"),
    };
    let added = filter.clone();
    state
        .change(
            change,
            |c| {
                if c.filters.iter().any(|x| x.fid == fid) {
                    return Err(Status::already_exists(format!("filter {fid:?} exists")));
                }
                c.filters.push(added);
                Ok(())
            },
            |c| json(c.filters.iter().find(|x| x.fid == fid)),
        )
        .await?;
    Ok(Response::new(convert::filter(&filter)))
}

pub async fn remove_filter(state: &AdminState, actor: &Actor, fid: String) -> Reply<pb::Done> {
    let change = Change {
        actor,
        action: "filter.remove",
        subject: format!("filter:{fid}"),
    };
    // A filter still named by a route or interceptor fails validation: the reason says which.
    state
        .change(
            change,
            |c| {
                let before = c.filters.len();
                c.filters.retain(|x| x.fid != fid);
                if c.filters.len() == before {
                    return Err(Status::not_found(format!("no filter {fid:?}")));
                }
                Ok(())
            },
            |c| json(c.filters.iter().find(|x| x.fid == fid)),
        )
        .await?;
    Ok(Response::new(pb::Done {
        detail: format!("filter {fid} removed"),
    }))
}

pub fn list_interceptors(c: &RouterConfig, table: pb::Table) -> pb::InterceptorList {
    let mut interceptors: Vec<_> = interceptor_ref(c, table)
        .iter()
        .map(|i| convert::interceptor(table, i))
        .collect();
    interceptors.sort_by_key(|i| std::cmp::Reverse(i.order));
    pb::InterceptorList { interceptors }
}

pub async fn add_interceptor(
    state: &AdminState,
    actor: &Actor,
    i: pb::Interceptor,
) -> Reply<pb::Interceptor> {
    let table = convert::table(i.table)?;
    let interceptor = convert::interceptor_config(i);
    let order = interceptor.order;
    let action = format!("interceptor.{}.add", name(table));
    let change = Change {
        actor,
        action: &action,
        subject: format!("interceptor.{}:{order}", name(table)),
    };
    let added = interceptor.clone();
    state
        .change(
            change,
            |c| {
                let list = interceptors(c, table);
                list.retain(|x| x.order != order);
                list.push(added);
                Ok(())
            },
            |c| json(interceptor_ref(c, table).iter().find(|x| x.order == order)),
        )
        .await?;
    Ok(Response::new(convert::interceptor(table, &interceptor)))
}

pub async fn remove_interceptor(
    state: &AdminState,
    actor: &Actor,
    r: pb::RouteRef,
) -> Reply<pb::Done> {
    let table = convert::table(r.table)?;
    let order = r.order;
    let action = format!("interceptor.{}.remove", name(table));
    let change = Change {
        actor,
        action: &action,
        subject: format!("interceptor.{}:{order}", name(table)),
    };
    state
        .change(
            change,
            |c| {
                let list = interceptors(c, table);
                let before = list.len();
                list.retain(|x| x.order != order);
                if list.len() == before {
                    return Err(Status::not_found(format!(
                        "no interceptor of order {order}"
                    )));
                }
                Ok(())
            },
            |c| json(interceptor_ref(c, table).iter().find(|x| x.order == order)),
        )
        .await?;
    Ok(Response::new(pb::Done {
        detail: format!("{} interceptor {order} removed", name(table)),
    }))
}

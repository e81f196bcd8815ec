//! The token controller (upstream's serviceaccount-token controller): Secrets of type
//! `kubernetes.io/service-account-token` annotated with `kubernetes.io/service-account.name`
//! get a legacy token signed with the server's service-account key, the cluster CA and the
//! namespace; they are deleted with their service account. [`decide`] says what a Secret needs.

pub mod decide;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use rudder_auth::service_account::Signer;
use rudder_auth::service_account::legacy::LegacyClaims;

use crate::context::run_controller;
use crate::informer::{Informer, own_triggers};
use crate::{Context, ControllerError, Result};
use decide::{Fill, Plan};

const COMPONENT: &str = "serviceaccount-token-controller";

struct State {
    client: Client,
    accounts: Informer<ServiceAccount>,
    signer: Signer,
    ca: Option<String>,
}

/// Runs the token controller; returns at once when the server handed no signing key.
pub async fn run(ctx: Context) -> Result<()> {
    let Some(key) = ctx.options.service_account_key_pem.as_deref() else {
        tracing::warn!(
            controller = COMPONENT,
            "no service-account key given; token Secrets are not filled"
        );
        return Ok(());
    };
    let signer = Signer::from_pem(key)?;
    let config = watcher::Config::default().fields(&format!("type={}", decide::SECRET_TYPE));
    let secrets: Informer<Secret> =
        Informer::start_with(&ctx.client, "token secrets", config, ctx.stopped());
    let accounts: Informer<ServiceAccount> =
        Informer::start(&ctx.client, "serviceaccounts", ctx.stopped());
    let store = secrets.store.clone();
    // A changed or deleted account wakes the Secrets naming it.
    let account_triggers = accounts.triggers(secrets.store.clone(), move |sa: &ServiceAccount| {
        let (ns, name) = (sa.namespace(), sa.name_any());
        store
            .state()
            .iter()
            .filter(|s| s.namespace() == ns && decide::account_name(s) == Some(name.as_str()))
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect()
    });
    let state = Arc::new(State {
        client: ctx.client.clone(),
        accounts,
        signer,
        ca: ctx.options.root_ca_pem.clone(),
    });
    run_controller(
        COMPONENT,
        secrets.store.clone(),
        vec![own_triggers(&secrets), account_triggers],
        state,
        |s, state| Box::pin(reconcile(s, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

async fn reconcile(secret: Arc<Secret>, state: Arc<State>) -> Result<Action> {
    let Some(account) = decide::account_name(&secret).map(str::to_owned) else {
        return Ok(Action::await_change());
    };
    let ns = secret.namespace().unwrap_or_default();
    let mut sa = state
        .accounts
        .store
        .get(&ObjectRef::new(&account).within(&ns));
    let mut plan = decide::decide(&secret, sa.as_deref(), state.ca.as_deref());
    if plan == Plan::Delete {
        // The account cache may lag behind an account created a moment ago: ask before
        // deleting a user's Secret.
        let api: Api<ServiceAccount> = Api::namespaced(state.client.clone(), &ns);
        sa = api.get_opt(&account).await?.map(Arc::new);
        plan = decide::decide(&secret, sa.as_deref(), state.ca.as_deref());
    }
    let api: Api<Secret> = Api::namespaced(state.client.clone(), &ns);
    let name = secret.name_any();
    let result = match (plan, sa) {
        (Plan::Nothing, _) => return Ok(Action::await_change()),
        (Plan::Delete, _) => {
            let params = DeleteParams {
                preconditions: secret.metadata.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            tracing::info!(secret = %format!("{ns}/{name}"), account, "deleting the token Secret of a deleted service account");
            api.delete(&name, &params).await.map(|_| ())
        }
        (Plan::Fill(fill), Some(sa)) => {
            let filled = filled(&secret, &fill, &sa, &state)?;
            api.replace(&name, &PostParams::default(), &filled)
                .await
                .map(|_| ())
        }
        (Plan::Fill(_), None) => return Ok(Action::await_change()),
    };
    match result {
        Ok(()) => Ok(Action::await_change()),
        // The Secret changed under us (409, resourceVersion) or is gone: the watch event
        // that follows wakes it again; the requeue covers a lost race.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Action::requeue(Duration::from_secs(1))),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// The Secret with `fill` applied (the resourceVersion kept, so a concurrent write wins).
fn filled(secret: &Secret, fill: &Fill, sa: &ServiceAccount, state: &State) -> Result<Secret> {
    let mut out = secret.clone();
    let ns = secret.namespace().unwrap_or_default();
    let uid = sa.metadata.uid.clone().unwrap_or_default();
    let data = out.data.get_or_insert_with(Default::default);
    if fill.token {
        let claims = LegacyClaims::new(&ns, &sa.name_any(), &uid, &secret.name_any());
        let token = state.signer.sign_legacy(&claims)?;
        data.insert(decide::TOKEN_KEY.into(), ByteString(token.into_bytes()));
    }
    if let Some(ca) = &fill.ca {
        data.insert(decide::CA_KEY.into(), ByteString(ca.clone().into_bytes()));
    }
    if fill.namespace {
        data.insert(decide::NAMESPACE_KEY.into(), ByteString(ns.into_bytes()));
    }
    if let Some(uid) = &fill.uid {
        out.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(decide::UID_ANNOTATION.into(), uid.clone());
    }
    // Data written through `data` must not be shadowed by `stringData` on the way in.
    out.string_data = None;
    Ok::<_, ControllerError>(out)
}

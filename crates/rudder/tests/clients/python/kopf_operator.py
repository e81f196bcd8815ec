"""A small kopf operator run against a rudder server by crates/rudder/tests/python_client.rs.

WebApp custom resources (rudder.test/v1): on create, a Deployment owned by the WebApp and a
status; on delete (behind kopf's finalizer), a ConfigMap recording that the handler ran.
"""

import kopf
import kubernetes


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.posting.level = 20  # INFO events
    settings.watching.server_timeout = 30


@kopf.on.create("rudder.test", "v1", "webapps")
def create_fn(spec, name, namespace, patch, logger, **_):
    kubernetes.config.load_kube_config()
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": f"{name}-web", "labels": {"webapp": name}},
        "spec": {
            "replicas": spec.get("replicas", 1),
            "selector": {"matchLabels": {"webapp": name}},
            "template": {
                "metadata": {"labels": {"webapp": name}},
                "spec": {"containers": [{"name": "web", "image": spec.get("image", "busybox:1.36")}]},
            },
        },
    }
    kopf.adopt(deployment)
    kubernetes.client.AppsV1Api().create_namespaced_deployment(namespace, deployment)
    logger.info("created deployment %s-web", name)
    patch.status["phase"] = "Deployed"
    return {"deployment": f"{name}-web"}


@kopf.on.delete("rudder.test", "v1", "webapps")
def delete_fn(name, namespace, logger, **_):
    kubernetes.config.load_kube_config()
    kubernetes.client.CoreV1Api().create_namespaced_config_map(
        namespace,
        {"metadata": {"name": f"{name}-deleted"}, "data": {"by": "kopf"}},
    )
    logger.info("deleted %s", name)

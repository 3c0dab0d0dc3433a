//! Test helpers of this crate's suites: the shared harness plus the sample CRD.
#![allow(dead_code)]

pub use ephemera_devcluster::testing::*;
use kube::Client;

/// The sample CRD used across tests (namespaced, status subresource, printer columns, defaults,
/// a set list and a map list).
pub const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.test.ephemera.dev
spec:
  group: test.ephemera.dev
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
              color: {type: string, enum: [red, green, blue], default: green}
              name: {type: string, maxLength: 8, pattern: '^[a-z]+$'}
              tags:
                type: array
                maxItems: 4
                x-kubernetes-list-type: set
                items: {type: string}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [name]
                items:
                  type: object
                  required: [name]
                  properties:
                    name: {type: string}
                    port: {type: integer}
          status:
            type: object
            properties:
              phase: {type: string}
              observed: {type: integer}
"#;

/// Installs the sample CRD through kube-rs and waits until it is served.
pub async fn install_gadget_crd(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, Patch, PatchParams};
    let crd: CustomResourceDefinition = serde_saphyr::from_str(WIDGET_CRD).expect("crd yaml");
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch("gadgets.test.ephemera.dev", &PatchParams::apply("tests").force(), &Patch::Apply(&crd))
        .await
        .expect("install crd");
    let gvk = kube::api::GroupVersionKind::gvk("test.ephemera.dev", "v1", "Gadget");
    eventually(20, "gadget CRD served", || {
        let client = client.clone();
        let gvk = gvk.clone();
        async move { kube::discovery::pinned_kind(&client, &gvk).await.ok() }
    })
    .await;
}

/// A dynamic API for gadgets in a namespace.
pub fn gadgets(client: &Client, ns: &str) -> kube::Api<kube::api::DynamicObject> {
    let ar = kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk("test.ephemera.dev", "v1", "Gadget"),
        "gadgets",
    );
    kube::Api::namespaced_with(client.clone(), ns, &ar)
}

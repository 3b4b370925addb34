// Starts Swagger UI or ReDoc on the OpenAPI document embedded in the page (no second request, so the
// page works behind the same bearer-token authentication as the API; no CDN, no validator call).
(function () {
  var spec = JSON.parse(document.getElementById("openapi-spec").textContent);
  var el = document.getElementById("api-docs");
  if (el.dataset.kind === "redoc") {
    window.Redoc.init(spec, {hideDownloadButton: false}, el);
  } else {
    window.SwaggerUIBundle({spec: spec, domNode: el, validatorUrl: null, deepLinking: true,
                            presets: [window.SwaggerUIBundle.presets.apis]});
  }
})();

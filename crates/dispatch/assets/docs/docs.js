// Starts Swagger UI on the description runbox serves. A separate file, not an inline
// script, so that the page's Content-Security-Policy can forbid inline scripts.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The token entered with "Authorize" survives a reload (it stays in this browser).
    persistAuthorization: true,
    tryItOutEnabled: true,
    displayRequestDuration: true,
    // Swagger UI would otherwise ask an outside validator about the description.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});

// Starts GraphiQL on this service's /graphql. Operations go to the address the page was served from; the
// token is whatever the Headers tab says, kept in the tab's memory only (not in local storage).
(function () {
  "use strict";

  var HEADERS = JSON.stringify({ Authorization: "Bearer <token>" }, null, 2);

  var QUERY = [
    "# Scimgraph's admin API.",
    "# 1. Replace <token> in the Headers tab below with a token",
    "#    (python -m app tokens create --account ACCOUNT).",
    "# 2. Run this query: Ctrl-Enter, or the button on the right.",
    "# 3. Reload the schema (Shift-Ctrl-R) for completion and docs.",
    "query Viewer {",
    "  viewer {",
    "    accountIdentifier",
    "    accountName",
    "    permissions",
    "  }",
    "}",
    "",
  ].join("\n");

  var endpoint = window.location.href.split(/[?#]/)[0];
  var explorer = GraphiQLPluginExplorer.explorerPlugin();

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: GraphiQL.createFetcher({ url: endpoint }),
      defaultQuery: QUERY,
      defaultHeaders: HEADERS,
      defaultEditorToolsVisibility: "headers",
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      inputValueDeprecation: true,
      plugins: [explorer],
    })
  );
})();

// Starts GraphiQL on /graphql/ from this server's own static files (no CDN, no
// inline script: the page runs under a Content-Security-Policy without
// 'unsafe-inline'). Queries and mutations go over HTTP POST; subscriptions
// open a graphql-transport-ws socket per subscription, whose connection_init
// payload is the Headers tab's JSON: {"Authorization": "JWT <token>"} there
// authenticates both.
(function () {
  'use strict';

  const container = document.getElementById('graphiql');
  const endpoint = new URL(container.dataset.endpoint || window.location.pathname, window.location.href);
  endpoint.search = '';
  endpoint.hash = '';
  const socketUrl = new URL(endpoint.href);
  socketUrl.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';

  const fetcher = GraphiQL.createFetcher({
    url: endpoint.href,
    subscriptionUrl: socketUrl.href,
    // Plain JSON answers: this server streams nothing over HTTP for queries.
    enableIncrementalDelivery: false,
  });

  const defaultQuery = [
    '# GraphiQL for this chat server. Log in first:',
    '#',
    '#   mutation LogIn { tokenAuth(username: "alice", password: "demo-chat-2026") { token } }',
    '#',
    '# then put {"Authorization": "JWT <token>"} in the Headers tab below.',
    '# Headers belong to the tab you set them in.',
    '',
    'query Me {',
    '  me { id username displayName }',
    '}',
    '',
  ].join('\n');

  ReactDOM.createRoot(container).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      // Kept in this browser's localStorage, so that a reload keeps the token.
      shouldPersistHeaders: true,
      inputValueDeprecation: true,
    }),
  );
})();

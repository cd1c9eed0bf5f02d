// The operations of the README's GraphiQL walk-through, character for character
// (tests/readme-examples.test.js checks that README.md carries exactly these).
export const LOG_IN = `mutation LogIn {
  tokenAuth(username: "alice", password: "demo-chat-2026") {
    token
    refreshToken
    user { id username }
  }
}`;

export const MY_ROOMS = `query MyRooms {
  rooms(joined: true, first: 10) {
    edges { node { id name unreadCount } }
  }
}`;

export const FIRST_SUBSCRIPTION = `subscription FirstSubscription {
  roomEvents {
    __typename
    cursor
    room { name }
    ... on MessageAdded { message { text sender { username } } }
    ... on TypingChanged { user { username } typing }
  }
}`;

// Every staff page: sign out, and a note left by the previous page.
import { api, showPendingFlash } from "/static/api.js";

const signOut = document.getElementById("sign-out");
if (signOut) {
  signOut.addEventListener("click", async () => {
    try { await api("POST", "/logout", {}); } catch { /* signed out already */ }
    window.location.assign("/login");
  });
}
showPendingFlash();

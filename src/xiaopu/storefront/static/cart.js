// The cart, kept in this browser (localStorage, one per shop): "add to cart" on product pages,
// the cart link's count and target, and emptying the cart once its order is placed. Pages work
// without it: "buy now" checks out one product.
(function () {
  "use strict";
  var shop = document.body.getAttribute("data-shop");
  var KEY = "xp_cart:";

  function load(slug) {
    try {
      var items = JSON.parse(localStorage.getItem(KEY + slug) || "[]");
      return Array.isArray(items) ? items : [];
    } catch (e) {
      return [];
    }
  }

  function save(slug, items) {
    try {
      if (items.length) localStorage.setItem(KEY + slug, JSON.stringify(items));
      else localStorage.removeItem(KEY + slug);
    } catch (e) { /* private mode: the cart lives as long as the page */ }
  }

  function checkoutUrl(slug, items) {
    var query = items.map(function (item) {
      return "v=" + encodeURIComponent(item.v) + "&n=" + encodeURIComponent(item.n);
    }).join("&");
    return "/m/" + encodeURIComponent(slug) + "/checkout" + (query ? "?" + query : "");
  }

  function showCart(slug) {
    var link = document.querySelector("[data-cart-link]");
    if (!link) return;
    var items = load(slug);
    var count = items.reduce(function (sum, item) { return sum + item.n; }, 0);
    link.hidden = count === 0;
    link.href = checkoutUrl(slug, items);
    var badge = link.querySelector("[data-cart-count]");
    if (badge) badge.textContent = String(count);
  }

  var placed = document.querySelector("[data-clear-cart]");
  if (placed && placed.getAttribute("data-clear-cart")) save(placed.getAttribute("data-clear-cart"), []);

  if (!shop) return;
  showCart(shop);

  // On the checkout page: take a line out of the cart, and show the cart without it.
  Array.prototype.forEach.call(document.querySelectorAll("[data-remove]"), function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var variant = button.getAttribute("data-remove");
      var rest = [];
      var params = new URLSearchParams(location.search);
      var vs = params.getAll("v"), ns = params.getAll("n");
      for (var i = 0; i < vs.length; i++) {
        if (vs[i] !== variant) rest.push({ v: vs[i], n: parseInt(ns[i], 10) || 1 });
      }
      save(shop, load(shop).filter(function (item) { return item.v !== variant; }));
      location.assign(checkoutUrl(shop, rest));
    });
  });

  var add = document.querySelector("[data-add-to-cart]");
  if (add) {
    var form = add.form;
    add.hidden = false;
    add.addEventListener("click", function () {
      var picked = form.querySelector("input[name=v]:checked");
      var qty = parseInt(form.querySelector("input[name=n]").value, 10);
      if (!picked || !(qty >= 1)) return;
      var items = load(shop);
      var found = items.filter(function (item) { return item.v === picked.value; })[0];
      if (found) found.n += qty;
      else items.push({ v: picked.value, n: qty });
      save(shop, items);
      showCart(shop);
      var note = form.querySelector("[data-added]");
      if (note) note.hidden = false;
    });
  }
})();

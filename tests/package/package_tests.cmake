# Package tests (label "package"), included from tests/CMakeLists.txt:
#   package/umbrella_header     include/tapegrad/tapegrad.h lists exactly the public headers
#   package/install             cmake --install to a temporary prefix + find_package consumer, built and run
#   package/fetchcontent_configure   the consumer configured with tapegrad through FetchContent (checks only)
#   package/fetchcontent_build  the same, built and run: opt-in, because it compiles tapegrad's libraries a
#                               second time (2.8 CPU-minutes; 8.8 min wall on the shared 2-core machine):
#                               cmake -B build -DTAPEGRAD_PACKAGE_FULL_TEST=ON && ctest --test-dir build -L package-full
option(TAPEGRAD_PACKAGE_FULL_TEST "Add package/fetchcontent_build (label package-full)" OFF)
set(package_driver ${CMAKE_CURRENT_LIST_DIR}/run_package_test.cmake)
set(package_args -DTAPEGRAD_SOURCE_DIR=${PROJECT_SOURCE_DIR} -DTAPEGRAD_BINARY_DIR=${PROJECT_BINARY_DIR}
    -DCONFIG=$<CONFIG> -DCXX_COMPILER=${CMAKE_CXX_COMPILER} -DLAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER}
    -DSANITIZE=${TAPEGRAD_SANITIZE})

add_test(NAME package/umbrella_header
         COMMAND ${CMAKE_COMMAND} -DTAPEGRAD_SOURCE_DIR=${PROJECT_SOURCE_DIR} -P ${PROJECT_SOURCE_DIR}/cmake/check_umbrella.cmake)
if(TAPEGRAD_INSTALL)
  add_test(NAME package/install
           COMMAND ${CMAKE_COMMAND} ${package_args} -DMODE=install -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/package/install
                   -P ${package_driver})
  set_tests_properties(package/install PROPERTIES LABELS package TIMEOUT 900)
endif()
add_test(NAME package/fetchcontent_configure
         COMMAND ${CMAKE_COMMAND} ${package_args} -DMODE=fetchcontent
                 -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/package/fetchcontent_configure -P ${package_driver})
set_tests_properties(package/umbrella_header package/fetchcontent_configure
                     PROPERTIES LABELS package TIMEOUT 900)
if(TAPEGRAD_PACKAGE_FULL_TEST)
  add_test(NAME package/fetchcontent_build
           COMMAND ${CMAKE_COMMAND} ${package_args} -DMODE=fetchcontent -DBUILD=ON
                   -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/package/fetchcontent_build -P ${package_driver})
  set_tests_properties(package/fetchcontent_build PROPERTIES LABELS "package;package-full" TIMEOUT 1800)
endif()
